"""What every other package stands on, importing nothing of the project: the one error type
that means bad input (`errors`), files written safely (`files`), progress lines (`progress`),
SIGINT/SIGTERM (`signals`), fault injection for the reliability tests (`faults`), the user cache
(`cache`) and small tensor helpers (`tensors`)."""

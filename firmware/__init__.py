"""Control logic: pure functions of `now`, handed everything it touches."""

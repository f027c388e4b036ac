"""Traffic entry layer (SPEC T): the touchpoint registry with owners, costs and targets."""

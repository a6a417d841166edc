package review

// Tests hash passwords with bcrypt's minimum cost: the account code is the
// same, only faster.
func init() { bcryptCost = 4 }

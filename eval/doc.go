// Package eval measures the pipeline against ground truth: it runs the
// production pipeline over a directory with truth.jsonl and computes, per
// parameter and per C7 obscuration grade, the mean and median absolute
// error, ICC(2,1), Bland–Altman bias and limits of agreement, landmark error
// in mm, the review-flag rate and how many large errors the flag catches. It
// also calibrates the review thresholds on a validation set.
package eval

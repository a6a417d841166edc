// Package pipeline is the measuring instrument: it turns a DICOM object into
// the result of shared/spec/measurements.md. An Analyzer, built once around
// the loaded models and safe for concurrent use, runs
//
//	decode → display window → stages (global, C7 locator, C2/C7 specialists)
//	→ merge (refined C2/C7 replace the global ones, chosen among the
//	  specialists' heatmap peaks by anatomical consistency: see Consistency)
//	→ measure (geometry) → C7 confidence and obscuration → review reasons
//	→ result.Result
//
// Single-stage mode (the paper's baseline) stops the models after the global
// stage and shares every step after it. Inputs the pipeline will not measure
// (not an image, a structured report, too small, an AP/PA or oblique view by
// header, an unsupported transfer syntax) give a result with status
// "rejected" and an error, never a failed run.
//
// Review thresholds live in thresholds.json (embedded; calibrated by
// `cspine eval --calibrate` on a validation set) and may be overridden.
package pipeline

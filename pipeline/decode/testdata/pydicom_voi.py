"""Reference modality and VOI values computed by pydicom, for pydicom_test.go.

Usage: python3 pydicom_voi.py FILE...
Prints one JSON object: {file: {"modality": [...], "display": [...]}} where
display is pydicom's VOI output scaled to [0, 1] (window output range or
LUT bit depth), before any MONOCHROME1 inversion.
"""
import json
import sys
import warnings

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi, apply_windowing

np.seterr(over="ignore")  # exp overflow in SIGMOID tails is expected
warnings.simplefilter("ignore")  # e.g. notes on excess padding in corpus files
out = {}
for path in sys.argv[1:]:
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    m = apply_modality_lut(arr, ds).astype("float64")
    if "VOILUTSequence" in ds:
        item = ds.VOILUTSequence[0]
        disp = apply_voi(m.astype("int64"), ds).astype("float64") / (2 ** item.LUTDescriptor[2] - 1)
    else:
        ext = apply_windowing(np.array([-1e12, 1e12]), ds)
        disp = (apply_windowing(m.copy(), ds) - ext[0]) / (ext[1] - ext[0])
    out[path] = {"modality": m.ravel().tolist(), "display": disp.ravel().tolist()}
json.dump(out, sys.stdout)

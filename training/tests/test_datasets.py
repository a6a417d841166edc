import logging
import math
import os
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cspine_train import datasets, imaging  # noqa: E402

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "csxa")


class CSXALoaderTest(unittest.TestCase):
    def load(self):
        return {s.id: s for s in datasets.load_csxa(FIX)}

    def test_pairs_json_and_png_by_stem_in_nested_dirs(self):
        got = self.load()
        self.assertEqual(sorted(got), ["0001035", "2548130"])
        s = got["0001035"]
        self.assertEqual(s.image.shape, (253, 200))  # rows, cols from the PNG
        self.assertEqual(s.image.dtype, np.float32)
        self.assertGreaterEqual(s.image.min(), 0.0)
        self.assertLessEqual(s.image.max(), 1.0)

    def test_left_is_anterior(self):
        s = self.load()["0001035"]
        lm = s.landmarks
        idx = datasets.LANDMARK_NAMES.index
        np.testing.assert_allclose(lm[idx("C2_inf_ant")], (260.17159763313606 / 4, 344.86982248520707 / 4))
        np.testing.assert_allclose(lm[idx("C2_inf_post")], (327.62721893491124 / 4, 318.8343195266272 / 4))
        np.testing.assert_allclose(lm[idx("C7_inf_ant")], (322.301775147929 / 4, 791.6153846153845 / 4))
        np.testing.assert_allclose(lm[idx("C3_sup_post")], (328.57142857142856 / 4, 337.0824175824176 / 4))
        np.testing.assert_allclose(lm[idx("C2_centroid")], (287.86131386861314 / 4, 273.7226277372263 / 4))
        self.assertEqual(s.facing, "left")
        self.assertFalse(np.isnan(lm).any())

    def test_duplicate_label_keeps_later_point_and_warns(self):
        with self.assertLogs("cspine_train.datasets", level=logging.WARNING) as cm:
            got = self.load()
        lm = got["2548130"].landmarks
        np.testing.assert_allclose(lm[datasets.LANDMARK_NAMES.index("C3_sup_post")], (83.0, 84.5))
        self.assertTrue(any("duplicate label 'C3 top right'" in m for m in cm.output))

    def test_pixel_size_joined_on_case_number_and_inverted_when_px_per_mm(self):
        got = self.load()
        self.assertEqual(got["0001035"].spacing, (0.92, 0.92))
        self.assertAlmostEqual(got["2548130"].spacing[0], 0.25)  # 4 px/mm -> 0.25 mm/px

    def test_missing_label_is_nan(self):
        with tempfile.TemporaryDirectory() as d:
            import json
            import shutil

            src = os.path.join(FIX, "datasets-JSON", "0001035.json")
            with open(src) as f:
                doc = json.load(f)
            doc["shapes"] = [s for s in doc["shapes"] if s["label"] != "C5 top left"]
            os.makedirs(os.path.join(d, "x"))
            with open(os.path.join(d, "x", "0001035.json"), "w") as f:
                json.dump(doc, f)
            shutil.copy(os.path.join(FIX, "datasets-PNG", "batch1", "0001035.png"), os.path.join(d, "x"))
            with self.assertLogs("cspine_train.datasets", level=logging.WARNING):
                (s,) = list(datasets.load_csxa(d))
            i = datasets.LANDMARK_NAMES.index("C5_sup_ant")
            self.assertTrue(np.isnan(s.landmarks[i]).all())
            self.assertEqual(int(np.isnan(s.landmarks[:, 0]).sum()), 1)
            self.assertIsNone(s.spacing)

    def test_label_table_is_complete(self):
        self.assertEqual(len(datasets.CSXA_LABELS), 23)
        self.assertEqual(sorted(datasets.CSXA_LABELS.values()), sorted(datasets.LANDMARK_NAMES))

    def test_case_key(self):
        self.assertEqual(datasets.csxa_case_key("0001035"), "1")
        self.assertEqual(datasets.csxa_case_key("2548"), "2548")


class ImagingTest(unittest.TestCase):
    def test_letterbox_point_mapping_round_trip(self):
        pts = np.array([[0.0, 0.0], [199.0, 252.0], [57.3, 100.9]])
        lb = imaging.to_letterbox(pts, 253, 200, 64)
        np.testing.assert_allclose(imaging.from_letterbox(lb, 253, 200, 64), pts, atol=1e-9)

    def test_letterbox_box_filter_and_padding(self):
        img = np.ones((100, 50), np.float32)
        out = imaging.letterbox(img, 40)
        # side 100, pad_x 25: columns 0..9 are padding, 10..29 image, 30..39 padding
        self.assertTrue((out[:, :10] == 0).all())
        self.assertTrue((out[:, 10:30] == 1).all())
        self.assertTrue((out[:, 30:] == 0).all())
        ramp = np.tile(np.arange(8, dtype=np.float32), (8, 1))
        np.testing.assert_allclose(imaging.letterbox(ramp, 4)[0], [0.5, 2.5, 4.5, 6.5])

    def test_decode_heatmap_subpixel(self):
        h, w = 32, 40
        ys, xs = np.mgrid[0:h, 0:w]
        for (x0, y0) in [(10.3, 7.8), (25.5, 20.1), (3.0, 4.0)]:
            g = 0.8 * np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * 1.5 ** 2))
            pts, conf = imaging.decode_heatmap(g[None])
            self.assertAlmostEqual(pts[0, 0], x0, places=6)
            self.assertAlmostEqual(pts[0, 1], y0, places=6)
            self.assertAlmostEqual(conf[0], 0.8 * math.exp(-((round(x0) - x0) ** 2 + (round(y0) - y0) ** 2) / 4.5), places=6)

    def test_crop_of_a_ramp(self):
        img = np.tile(np.arange(100, dtype=np.float32), (80, 1))  # value = x
        c = imaging.crop(img, 50.0, 40.0, 8, 0.5, 0.5)  # k = 1
        np.testing.assert_allclose(c[0], 50.0 + (np.arange(8) - 3.5) * 0.5, atol=1e-5)
        c = imaging.crop(img, 50.0, 40.0, 8, 2.5, 2.5)  # k = 3, linear: mean == centre value
        np.testing.assert_allclose(c[3], 50.0 + (np.arange(8) - 3.5) * 2.5, atol=1e-4)
        p = imaging.to_crop(np.array([[50.0, 40.0]]), 50.0, 40.0, 8, 2.5, 2.5)
        np.testing.assert_allclose(p, [[3.5, 3.5]])


class DisplayTest(unittest.TestCase):
    def make(self, **kw):
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian

        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.is_little_endian = True
        ds.is_implicit_VR = False
        ds.Rows, ds.Columns = 2, 3
        ds.SamplesPerPixel = 1
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.PhotometricInterpretation = kw.pop("photometric", "MONOCHROME2")
        arr = np.array([[0, 1000, 2000], [3000, 4000, 4095]], np.uint16)
        ds.PixelData = arr.tobytes()
        for k, v in kw.items():
            setattr(ds, k, v)
        return ds

    def test_window_and_monochrome1(self):
        ds = self.make(WindowCenter=2048, WindowWidth=4096)
        out = imaging.display_from_dataset(ds)
        self.assertEqual(out.shape, (2, 3))
        self.assertTrue(np.all(np.diff(out.ravel()) > 0))
        self.assertLess(out[0, 0], 0.01)
        self.assertGreater(out[1, 2], 0.99)
        inv = imaging.display_from_dataset(self.make(WindowCenter=2048, WindowWidth=4096, photometric="MONOCHROME1"))
        np.testing.assert_allclose(inv, 1.0 - out, atol=1e-6)

    def test_window_after_rescale_is_the_linear_window_of_modality_values(self):
        # PS3.3 C.11.2.1.2.1 (LINEAR) on modality values, for unsigned and
        # signed stored values with a rescale, as pipeline/window computes it
        arr = np.array([[0, 1000, 2000], [3000, 4000, 4095]], np.float64)
        cases = [
            dict(RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=1000, WindowWidth=2000),
            dict(RescaleSlope=2, RescaleIntercept=100, WindowCenter=4000, WindowWidth=6000),
        ]
        for kw in cases:
            ds = self.make(**kw)
            mod = arr * kw["RescaleSlope"] + kw["RescaleIntercept"]
            c, w = kw["WindowCenter"], kw["WindowWidth"]
            want = np.clip((mod - (c - 0.5)) / (w - 1) + 0.5, 0, 1)
            np.testing.assert_allclose(imaging.display_from_dataset(ds), want, atol=1e-6, err_msg=str(kw))
        # signed 16-bit CR with intercept 32768 (a phantom variant)
        ds = self.make(RescaleSlope=1, RescaleIntercept=32768, WindowCenter=31196, WindowWidth=49625)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
        raw = np.array([[-30000, -10000, 0], [5000, 20000, 32000]], np.int16)
        ds.PixelData = raw.tobytes()
        mod = raw.astype(np.float64) + 32768
        want = np.clip((mod - (31196 - 0.5)) / (49625 - 1) + 0.5, 0, 1)
        np.testing.assert_allclose(imaging.display_from_dataset(ds), want, atol=1e-6)

    def test_rescale_then_auto_window(self):
        ds = self.make(RescaleSlope=2, RescaleIntercept=-100)
        out = imaging.display_from_dataset(ds)
        self.assertAlmostEqual(float(out.min()), 0.0)
        self.assertAlmostEqual(float(out.max()), 1.0)
        self.assertTrue(np.all(np.diff(out.ravel()) > 0))


if __name__ == "__main__":
    unittest.main()

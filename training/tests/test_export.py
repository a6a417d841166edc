"""Export with kept stages: a run that retrains only some stages (--stages)
copies the others from a base model directory byte for byte, with their
manifest entries and export checks."""
import argparse
import json
import os
import sys
import tempfile
import unittest

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cspine_train import config, export  # noqa: E402
from cspine_train.models import C7Locator, HeatmapNet  # noqa: E402


def args_for(out, base=None):
    return argparse.Namespace(out=out, base=base, name="test", version="0.0.1", trained_on="unit test", format="phantom",
                              data=["x"], note="", epochs_global=1, epochs_c2=2, epochs_c7=3, threads=1, device="cpu",
                              seed=7)


def all_models(seed, c7_widths=config.WIDTHS):
    torch.manual_seed(seed)
    return {
        "global": HeatmapNet(23, widths=config.WIDTHS, out_stride=config.GLOBAL["stride"]),
        "c7_locator": C7Locator(),
        "c2": HeatmapNet(3, widths=config.WIDTHS, out_stride=config.C2["stride"]),
        "c7": HeatmapNet(4, widths=c7_widths, out_stride=config.C7["stride"], obscuration_classes=3),
    }


def read(path):
    with open(path, "rb") as f:
        return f.read()


class PartialExportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.base = os.path.join(self.tmp.name, "base")
        secs = {"global": 10.0, "c2": 20.0, "c7": 30.0, "c7_locator": 40.0}
        self.base_manifest = export.export_all(args_for(self.base), all_models(1), 5, secs)

    def tearDown(self):
        self.tmp.cleanup()

    def test_kept_stages_are_copied_and_the_trained_one_replaced(self):
        out = os.path.join(self.tmp.name, "out")
        widths = (16, 24, 48, 64, 96)
        models = {k: None for k in ("global", "c2", "c7_locator")}
        models["c7"] = all_models(2, c7_widths=widths)["c7"]
        m = export.export_all(args_for(out, base=self.base), models, 7, {"c7": 99.0}, widths={"c7": widths})
        for key in ("global", "c2", "c7_locator"):
            entry = self.base_manifest["stages"][key]
            self.assertEqual(m["stages"][key], entry)
            self.assertEqual(read(os.path.join(out, entry["file"])), read(os.path.join(self.base, entry["file"])))
        self.assertNotEqual(m["stages"]["c7"]["sha256"], self.base_manifest["stages"]["c7"]["sha256"])
        self.assertEqual(m["stages"]["c7"]["widths"], list(widths))
        self.assertEqual(export.sha256(os.path.join(out, "c7_refine.onnx")), m["stages"]["c7"]["sha256"])
        self.assertEqual(m["training"]["trained_stages"], ["c7"])
        self.assertEqual(m["training"]["seed"], 7)  # the run's --seed, not the default
        # kept stages keep their epochs; the trained stage gets this run's
        self.assertEqual(m["training"]["epochs"], {"global": 1, "c2": 2, "c7": 3})
        self.assertEqual(m["training"]["stage_seconds"], {"global": 10.0, "c2": 20.0, "c7": 99.0, "c7_locator": 40.0})
        with open(os.path.join(out, "export_check.json")) as f:
            checks = json.load(f)["stages"]
        with open(os.path.join(self.base, "export_check.json")) as f:
            base_checks = json.load(f)["stages"]
        self.assertEqual(checks["global"], base_checks["global"])
        self.assertNotEqual(checks["c7"], base_checks["c7"])

    def test_a_missing_stage_without_base_is_an_error(self):
        models = all_models(3)
        models["c2"] = None
        with self.assertRaisesRegex(ValueError, "c2 was not trained"):
            export.export_all(args_for(os.path.join(self.tmp.name, "o2")), models, 1, {})

    def test_a_base_file_that_does_not_match_its_manifest_is_refused(self):
        with open(os.path.join(self.base, "c2_refine.onnx"), "ab") as f:
            f.write(b"x")
        models = all_models(4)
        models["c2"] = None
        with self.assertRaisesRegex(ValueError, "sha256 differs"):
            export.export_all(args_for(os.path.join(self.tmp.name, "o3"), base=self.base), models, 1, {})


if __name__ == "__main__":
    unittest.main()

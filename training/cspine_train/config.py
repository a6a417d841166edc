"""Fixed geometry of the four stages. Written into the manifest verbatim;
pipeline/stages (Go) reads it from there, never from here."""

# widths: channels at strides 2, 4, 8, 16, 32 (small: the recipe must train on a shared 2-core CPU)
WIDTHS = (12, 16, 32, 48, 64)
GLOBAL = dict(input_size=256, stride=4, sigma=2.0)
# Specialists: crop side in mm when the pixel spacing is known, otherwise
# fallback_vertebra_factor x the median C3-C6 endplate width (pixels).
C2 = dict(input_size=128, stride=2, sigma=1.5, side_mm=48.0, fallback_vertebra_factor=3.0,
          jitter_mm=3.0, jitter_clip_mm=10.0)
C7 = dict(input_size=160, stride=2, sigma=1.5, side_mm=64.0, fallback_vertebra_factor=4.0,
          jitter_mm=5.0, jitter_clip_mm=16.0)
# rot_deg: rotation augmentation of the locator (flexion/extension films tilt the neck ~45 deg)
LOCATOR = dict(presence_threshold=0.3, rot_deg=30.0)
# cache crops are CACHE_FACTOR x the crop side, so jitter can be sampled from them
CACHE_FACTOR = 2

"""Every number the finder uses, in one place, with its name.

The JavaScript twin of the finder (the browser page) reads the same values; keep the two in step.
Sizes are pixels, ratios are plain fractions, indices are FaceMesh landmark numbers (0..467) or
BlazeFace keypoint numbers (0..5).
"""

from __future__ import annotations

# --------------------------------------------------------------------------- detector (BlazeFace short-range)

#: Side of the detector's square input (letterboxed).
DETECTOR_SIZE = 128
#: SSD anchor layers: the stride of each layer, in detector pixels; layers with the same stride are merged.
ANCHOR_STRIDES = (8, 16, 16, 16)
#: Anchor centres sit at (cell + ANCHOR_OFFSET) / cells.
ANCHOR_OFFSET = 0.5
#: 16x16 cells x 2 anchors + 8x8 cells x 6 anchors.
NUM_ANCHORS = 896
#: Numbers per anchor in the ``regressors`` output: box (cx, cy, w, h) then 6 keypoints (x, y).
NUM_REGRESSORS = 16
#: Keypoints of a detection, in the model's order (image-left eye first).
KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth", "left_ear", "right_ear")
#: Detection logits are clipped to +-LOGIT_CLIP before the sigmoid (MediaPipe's limit; float64 avoids overflow).
LOGIT_CLIP = 100.0
#: Detections with a score below this are dropped.
MIN_DETECTION_SCORE = 0.5
#: Weighted non-maximum suppression merges detections whose IoU with the best one is above this.
NMS_IOU = 0.3

# --------------------------------------------------------------------------- landmarks (FaceMesh)

#: Side of FaceMesh's square input.
LANDMARK_SIZE = 192
#: Number of FaceMesh landmarks (x, y, z each).
NUM_LANDMARKS = 468
#: The FaceMesh crop is a square of ROI_SCALE x the detection box's long side, turned by the eye line.
ROI_SCALE = 1.5
#: FaceMesh's face-presence probability must reach this, or the detection is taken as a false positive.
MIN_PRESENCE = 0.5
#: A detection whose two eye keypoints are closer than this fraction of its box's long side is a face in profile
#: and is set aside (FaceMesh often takes a profile for a front view and puts the forehead on the ear). Measured on
#: london-5view: profiles that pass FaceMesh <= 0.16, three-quarter views >= 0.24, front views >= 0.38.
MIN_EYE_SPAN = 0.2

# --------------------------------------------------------------------------- regions

#: Upper contour of each eyebrow (subject's right brow 70..107, left brow 300..336): the forehead's bottom edge
#: is the topmost of them.
BROW_UPPER = (70, 63, 105, 66, 107, 300, 293, 334, 296, 336)
#: The top row of the mesh (it never reaches the hairline): the forehead's top edge is their mean.
MESH_TOP = (10, 338, 109, 297, 67)
#: Mid-brow points that give the forehead's left and right edges (image-left first).
FOREHEAD_SIDES = (105, 334)
#: Outer eye corners (image-left, image-right): the face's roll is the angle of the line from the first to the second.
EYE_CORNERS = (33, 263)

# --------------------------------------------------------------------------- decoding and statuses

#: Large images are reduced by the largest whole factor of 2, 4, 8 that keeps both sides at least this long
#: (JPEGs decoded so by DCT scaling, Pillow's draft): a 4000x3000 photo is found at 1000x750, a 1920x1080 one
#: at full size. Boxes are scaled back to full resolution.
DECODE_SIZE = 750
#: The version of the finder's answers: raise it whenever a change of the pipeline can change a status or a box,
#: so results cached by content (``skinage ingest --find``) are computed again. 2: the bordered second pass.
PIPELINE_VERSION = 2
#: The chosen face's box (squared) must be at least this many pixels wide in the full-resolution image.
MIN_FACE_SIZE = 40
#: When no face is found, the finder looks again with a border of this fraction of the working image's long side
#: added on every side (UTKFace-style crops that the face fills edge to edge: the detector was trained on looser
#: framing). Boxes and landmarks are given in pixels of the photo itself (the border taken off, boxes clamped).
FALLBACK_BORDER = 0.25
#: The border's colour (mid grey, RGB).
FALLBACK_FILL = (128, 128, 128)
#: A second face whose box area is at least this fraction of the largest face's is "comparable":
#: the photo is refused as several_faces. Smaller faces (bystanders) are ignored.
COMPARABLE_AREA = 0.4

// Every number the finder uses: the values of skinage/find/constants.py, one for one (same names in
// camel case). tests/test_app_finder.py reads both files and fails when they differ.

// detector (BlazeFace short-range)
export const DETECTOR_SIZE = 128;
export const ANCHOR_STRIDES = Object.freeze([8, 16, 16, 16]);
export const ANCHOR_OFFSET = 0.5;
export const NUM_ANCHORS = 896;
export const NUM_REGRESSORS = 16;
export const KEYPOINT_NAMES = Object.freeze(['left_eye', 'right_eye', 'nose', 'mouth', 'left_ear', 'right_ear']);
export const LOGIT_CLIP = 100.0;
export const MIN_DETECTION_SCORE = 0.5;
export const NMS_IOU = 0.3;

// landmarks (FaceMesh)
export const LANDMARK_SIZE = 192;
export const NUM_LANDMARKS = 468;
export const ROI_SCALE = 1.5;
export const MIN_PRESENCE = 0.5;
export const MIN_EYE_SPAN = 0.2;

// regions
export const BROW_UPPER = Object.freeze([70, 63, 105, 66, 107, 300, 293, 334, 296, 336]);
export const MESH_TOP = Object.freeze([10, 338, 109, 297, 67]);
export const FOREHEAD_SIDES = Object.freeze([105, 334]);
export const EYE_CORNERS = Object.freeze([33, 263]);

// decoding and statuses
export const DECODE_SIZE = 750;
// the version of the finder's answers (Python caches them by content under it)
export const PIPELINE_VERSION = 2;
export const MIN_FACE_SIZE = 40;
// no face found: look again with a border of this fraction of the working image's long side, in this grey
export const FALLBACK_BORDER = 0.25;
export const FALLBACK_FILL = Object.freeze([128, 128, 128]);
export const COMPARABLE_AREA = 0.4;

// statuses (skinage/find/result.py)
export const OK = 'ok';
export const NO_FACE = 'no_face';
export const SEVERAL_FACES = 'several_faces';
export const FACE_TOO_SMALL = 'face_too_small';
export const UNREADABLE = 'unreadable';
export const STATUSES = Object.freeze([OK, NO_FACE, SEVERAL_FACES, FACE_TOO_SMALL, UNREADABLE]);

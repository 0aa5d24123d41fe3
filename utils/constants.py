"""Constants of the SPIN / DynaBOA conventions.

Values follow the original `constants.py` (identical to SPIN's); see
`docs/method.md` §2.5 and §2.5. Index maps are plain lists so that they can index numpy
arrays and torch tensors alike.
"""
from __future__ import annotations

FOCAL_LENGTH = 5000.0  # focal length (pixels) of the virtual camera of a 224-px crop
IMG_RES = 224  # side of the square crop fed to the network
IMG_NORM_MEAN = (0.485, 0.456, 0.406)  # ImageNet, applied to RGB in [0, 1]
IMG_NORM_STD = (0.229, 0.224, 0.225)

# --- the 49-joint layout: OpenPose BODY_25 (0-24) followed by the 24 "GT" joints (25-48) --------------------------
OPENPOSE_25_NAMES = [
    "OP Nose", "OP Neck", "OP RShoulder", "OP RElbow", "OP RWrist", "OP LShoulder", "OP LElbow", "OP LWrist",
    "OP MidHip", "OP RHip", "OP RKnee", "OP RAnkle", "OP LHip", "OP LKnee", "OP LAnkle", "OP REye", "OP LEye",
    "OP REar", "OP LEar", "OP LBigToe", "OP LSmallToe", "OP LHeel", "OP RBigToe", "OP RSmallToe", "OP RHeel",
]
GT_24_NAMES = [
    "Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee", "Left Ankle", "Right Wrist", "Right Elbow",
    "Right Shoulder", "Left Shoulder", "Left Elbow", "Left Wrist", "Neck (LSP)", "Top of Head (LSP)",
    "Pelvis (MPII)", "Thorax (MPII)", "Spine (H36M)", "Jaw (H36M)", "Head (H36M)", "Nose", "Left Eye",
    "Right Eye", "Left Ear", "Right Ear",
]
JOINT_NAMES = OPENPOSE_25_NAMES + GT_24_NAMES  # 49 names
JOINT_IDS = {name: i for i, name in enumerate(JOINT_NAMES)}
NUM_JOINTS = len(JOINT_NAMES)  # 49
OP_SLICE = slice(0, 25)  # OpenPose block of the 49 joints
GT_SLICE = slice(25, 49)  # 24 GT joints (the block the 3DPW / H36M losses use)

# Source of each of the 49 joints in the 54 joints [24 SMPL kinematic | 21 smplx vertex joints | 9 J_regressor_extra]
# (docs/method.md §2.5). smplx vertex joints: 24 nose, 25 reye, 26 leye, 27 rear, 28 lear, 29-34 LBigToe, LSmallToe,
# LHeel, RBigToe, RSmallToe, RHeel. Extra regressor rows: 45 R hip, 46 L hip, 47 LSP neck, 48 head top,
# 49 MPII pelvis, 50 thorax, 51 H36M spine, 52 jaw, 53 H36M head.
SMPL_TO_J49 = [
    24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
    8, 5, 45, 46, 4, 7, 21, 19, 17, 16, 18, 20, 47, 48, 49, 50, 51, 52, 53, 24, 26, 25, 28, 27,
]
NUM_SMPL_JOINTS = 24
NUM_SMPLX_VERTEX_JOINTS = 21  # joints smplx.SMPL appends by vertex selection
NUM_EXTRA_JOINTS = 9  # rows of J_regressor_extra.npy

SMPL_JOINT_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
    "right_hand",
]
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]

# H36M-17 regressor order (J_regressor_h36m.npy rows)
H36M_17_NAMES = [
    "pelvis", "lhip", "lknee", "lankle", "rhip", "rknee", "rankle", "spine", "neck", "head", "headtop",
    "lshoulder", "lelbow", "lwrist", "rshoulder", "relbow", "rwrist",
]
H36M_TO_J17 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9]
H36M_TO_J14 = H36M_TO_J17[:14]  # LSP-14 order from the H36M-17 regressor (evaluation joints)
J24_TO_J17 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18, 14, 16, 17]
J24_TO_J14 = J24_TO_J17[:14]

# --- flip permutations ----------------------------------------------------------------------------------------------
SMPL_JOINTS_FLIP_PERM = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
SMPL_POSE_FLIP_PERM = [3 * j + k for j in SMPL_JOINTS_FLIP_PERM for k in range(3)]  # 72 axis-angle entries
J24_FLIP_PERM = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18, 19, 21, 20, 23, 22]
J49_FLIP_PERM = [0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23, 24, 19, 20, 21] + [
    25 + i for i in J24_FLIP_PERM
]

# --- 3DPW test sequences in the fixed order of the original preprocessing (docs/method.md §8.3) ---------------------
PW3D_TEST_SEQUENCES = [
    "downtown_runForBus_00", "downtown_rampAndStairs_00", "flat_packBags_00", "downtown_runForBus_01",
    "office_phoneCall_00", "downtown_windowShopping_00", "downtown_walkUphill_00", "downtown_sitOnStairs_00",
    "downtown_enterShop_00", "downtown_walking_00", "downtown_stairs_00", "downtown_crossStreets_00",
    "downtown_car_00", "downtown_downstairs_00", "downtown_bar_00", "downtown_walkBridge_01",
    "downtown_weeklyMarket_00", "downtown_warmWelcome_00", "downtown_arguing_00", "downtown_upstairs_00",
    "downtown_bus_00", "flat_guitar_01", "downtown_cafe_00", "outdoors_fencing_01",
]

"""Index maps of utils.constants checked against their names (docs/method.md §2.5)."""
from __future__ import annotations

from utils import constants as C


def test_joint_list_layout():
    assert len(C.JOINT_NAMES) == 49 and len(set(C.JOINT_NAMES)) == 49
    assert C.JOINT_NAMES[C.OP_SLICE][0] == "OP Nose" and C.JOINT_NAMES[C.GT_SLICE][0] == "Right Ankle"
    assert len(C.SMPL_TO_J49) == 49
    assert max(C.SMPL_TO_J49) == C.NUM_SMPL_JOINTS + C.NUM_SMPLX_VERTEX_JOINTS + C.NUM_EXTRA_JOINTS - 1


def test_smpl_to_j49_semantics():
    smpl = C.SMPL_JOINT_NAMES
    # GT block joints that come from SMPL's own kinematic joints carry the same name
    for j49, smpl_name in [("Right Ankle", "right_ankle"), ("Left Knee", "left_knee"), ("Right Wrist", "right_wrist"),
                           ("Left Shoulder", "left_shoulder"), ("OP MidHip", "pelvis"), ("OP Neck", "neck")]:
        assert smpl[C.SMPL_TO_J49[C.JOINT_IDS[j49]]] == smpl_name
    # GT hips come from J_regressor_extra rows 0/1 (45, 46), not from SMPL's kinematic hips
    assert C.SMPL_TO_J49[C.JOINT_IDS["Right Hip"]] == 45 and C.SMPL_TO_J49[C.JOINT_IDS["Left Hip"]] == 46


def test_flip_perms_are_involutions_that_swap_sides():
    for perm in (C.SMPL_JOINTS_FLIP_PERM, C.J24_FLIP_PERM, C.J49_FLIP_PERM, C.SMPL_POSE_FLIP_PERM):
        assert sorted(perm) == list(range(len(perm)))
        assert [perm[p] for p in perm] == list(range(len(perm)))
    names = C.JOINT_NAMES
    for i, j in enumerate(C.J49_FLIP_PERM):
        a, b = names[i], names[j]
        swapped = a.replace("Left", "#").replace("Right", "Left").replace("#", "Right")
        swapped = swapped.replace("OP L", "OP #").replace("OP R", "OP L").replace("OP #", "OP R")
        assert b == swapped, (a, b)


def test_eval_maps():
    # LSP-14 order from the H36M-17 regressor: R ankle first, head top last
    assert C.H36M_17_NAMES[C.H36M_TO_J14[0]] == "rankle" and C.H36M_17_NAMES[C.H36M_TO_J14[-1]] == "headtop"
    assert [C.GT_24_NAMES[i] for i in C.J24_TO_J14][:3] == ["Right Ankle", "Right Knee", "Right Hip"]
    assert len(C.PW3D_TEST_SEQUENCES) == 24 and C.PW3D_TEST_SEQUENCES[23] == "outdoors_fencing_01"

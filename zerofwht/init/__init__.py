"""zerofwht.init: deterministic initializers (package; see fill.py)."""
from . import fill as _fill_module
from .fill import *  # noqa: F401,F403
from .fill import (KIND_HADAMARD, KIND_IDI, KIND_IDIZ, KIND_NAMES, KIND_PARTIAL_IDENTITY,  # noqa: F401
                   KIND_ZEROS, TAP_CENTRE, TAP_FLATTEN, _backends, _check_op_args, fill_,
                   logical_matrix, value_bits)

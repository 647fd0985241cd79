"""Exercise checks: each takes the learner's answer and says, in words, what is wrong.

One module per lesson; every check is importable from here
(``from course_utils.checks import check_double_conv``).
"""
from ._common import CheckFailed, fail, passed
from .lesson01 import *  # noqa: F401,F403
from .lesson02 import *  # noqa: F401,F403
from .lesson03 import *  # noqa: F401,F403
from .lesson04 import *  # noqa: F401,F403
from .lesson05 import *  # noqa: F401,F403
from .lesson06 import *  # noqa: F401,F403
from .lesson07 import *  # noqa: F401,F403
from .lesson08 import *  # noqa: F401,F403
from .lesson09 import *  # noqa: F401,F403
from .lesson10 import *  # noqa: F401,F403
from .lesson11 import *  # noqa: F401,F403
from .lesson12 import *  # noqa: F401,F403
from .lesson13 import *  # noqa: F401,F403
from .lesson14 import *  # noqa: F401,F403

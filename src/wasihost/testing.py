"""``wasihost.testing``, where plugin tests import it from: the harness lives
in ``wasihost.authoring.testing`` with the other tools for plugin authors."""

from wasihost.authoring.testing import *  # noqa: F403
from wasihost.authoring.testing import __all__  # noqa: F401

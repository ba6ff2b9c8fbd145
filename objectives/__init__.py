"""The objectives registry: one factory per module, each named like its module.

``REGISTRY`` maps the registry name (== ``Objective.name`` == the module and
factory name == the ``conf/objective/<name>.yaml`` option) to the factory.
"""

from objectives.base import Objective
from objectives.least_squares import least_squares
from objectives.quartic import quartic
from objectives.shifted_quadratic import shifted_quadratic
from objectives.sin_cos import sin_cos
from objectives.two_layer_net import two_layer_net

REGISTRY = {f.__name__: f for f in (quartic, shifted_quadratic, sin_cos, least_squares, two_layer_net)}

__all__ = ["REGISTRY", "Objective", "least_squares", "quartic", "shifted_quadratic", "sin_cos", "two_layer_net"]

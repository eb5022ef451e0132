"""The training loss, `cross_entropy`: defined in `course_lib.loss`, beside the model that computes it.

(It lives outside this package because `GPT.forward` computes its loss with it, and this package
imports the model: importing it from here would make the model import itself.)
"""

from ..loss import cross_entropy

__all__ = ["cross_entropy"]

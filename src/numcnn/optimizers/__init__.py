"""Optimizers: ``step(params, grads)`` updates named parameters in place.

``params`` and ``grads`` are dicts ``{name: array}`` with the same keys (a model's
``trainable_params()`` and ``trainable_grads()``); state (velocity, moments, step count)
lives in the optimizer, keyed by those names, and ``state_dict()``/``load_state_dict()``
make training resumable.

Every update rule follows PyTorch's ``torch.optim`` class of the same name (same argument
names, defaults and equation; weight decay is the L2 term ``g ← g + λ·p`` folded into the
gradient), operation by operation (see :mod:`.base`), and each docstring writes the
equation out and says where Keras differs (mostly where ε sits). ``lr`` is a plain attribute
read at every step, so a schedule or callback can change it between steps. Learning-rate
schedules live in :mod:`numcnn.schedules`.

| name | class | PyTorch | reference |
|---|---|---|---|
| ``sgd`` | :class:`SGD` | ``SGD`` | Robbins & Monro 1951; Polyak 1964; Sutskever et al. 2013 |
| ``adagrad`` | :class:`Adagrad` | ``Adagrad`` | Duchi, Hazan & Singer 2011 |
| ``adadelta`` | :class:`Adadelta` | ``Adadelta`` | Zeiler 2012 |
| ``rmsprop`` | :class:`RMSprop` | ``RMSprop`` | Hinton, Coursera lecture 6e (2012) |
| ``adam`` | :class:`Adam` | ``Adam`` | Kingma & Ba 2015; AMSGrad: Reddi et al. 2018 |
| ``adamax`` | :class:`Adamax` | ``Adamax`` | Kingma & Ba 2015, §7.1 |
| ``nadam`` | :class:`Nadam` | ``NAdam`` | Dozat 2016 |
| ``sdlm`` | :class:`SDLM` | — | LeCun et al. 1998, appendix C |
| ``lbfgs`` | :class:`LBFGS` | ``LBFGS`` | Liu & Nocedal 1989; minFunc (UFLDL) |

:class:`LBFGS` is a *closure* optimizer (``needs_closure = True``): its ``step`` takes a
third argument, a function that re-evaluates the loss and refills the gradients, which
``fit`` supplies.
"""

from typing import Any

from .adam import Adam, Adamax, Nadam
from .adaptive import Adadelta, Adagrad, RMSprop
from .base import OPTIMIZERS, Optimizer
from .lbfgs import LBFGS
from .sdlm import SDLM
from .sgd import SGD

__all__ = ["LBFGS", "OPTIMIZERS", "SDLM", "SGD", "Adadelta", "Adagrad", "Adam", "Adamax", "Nadam",
           "Optimizer", "RMSprop", "get"]


def get(identifier: Any, **kwargs: Any) -> Optimizer:
    """An optimizer from a registered name, a class, or an instance."""
    return OPTIMIZERS.get(identifier, **kwargs)

"""rnn-dynamics: spectral and Jacobian study of recurrent-network initialisations.

The public API: the init registry (:mod:`.inits`), stacks of Elman cells
(:mod:`.cells`), Jacobian products and gradient norms (:mod:`.jacobians`), spectra
(:mod:`.spectra`), tasks (:mod:`.tasks`), training (:mod:`.train`), probes
(:mod:`.probes`), the dataset schema (:mod:`.records`) and studies (:mod:`.sweep`).
"""

__version__ = "0.1.0"

from .cells import ElmanStack, Trace
from .inits import get_init, list_inits, parse_init_spec, register_init
from .records import SCHEMA, read_dataset, write_dataset
from .sweep import StudyConfig, run_study
from .tasks import list_tasks, make_task
from .train import TrainConfig

__all__ = [
    "__version__", "ElmanStack", "Trace", "get_init", "list_inits", "parse_init_spec", "register_init",
    "SCHEMA", "read_dataset", "write_dataset", "StudyConfig", "run_study", "list_tasks", "make_task",
    "TrainConfig",
]

"""mcusearch: search the configurations of a neural network for the cheapest microcontroller.

The package follows the pipeline, one subpackage or module per stage::

    spec -> study -> trial -> model -> convert -> build -> measure -> score -> report

Every stage has one entry point that takes typed inputs and returns a typed result
(a dataclass), so a trial is the composition of stages and each stage can run alone.
"""
import os as _os

# tf-keras (Keras 2) must be selected before TensorFlow is first imported anywhere.
_os.environ["TF_USE_LEGACY_KERAS"] = "1"
# TensorFlow's C++ logging (e.g. graph attribute notes during fit) is noise for a CLI user;
# Python-level errors still raise. Set TF_CPP_MIN_LOG_LEVEL yourself to see it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"

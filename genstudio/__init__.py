"""GenStudio: a desktop workbench for training and watching generative models.

Importing this package loads no Qt; ``genstudio.qt`` is the only place that does.
"""

__version__ = "0.1.0"

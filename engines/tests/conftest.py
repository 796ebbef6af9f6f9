import os
import sys

# Tests import the package from engines/ without installing it.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

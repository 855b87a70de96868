"""The one compiled part: hub/net/_writemany.c (the fan-out's writes with the GIL released). Optional: without a
C compiler the hub installs and runs on its pure-Python path."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("hub.net._writemany", ["hub/net/_writemany.c"], optional=True)])

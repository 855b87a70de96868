"""The compiled parts: hub/net/_writemany.c (the fan-out's writes with the GIL released) and hub/core/_outbox.c
(the outbox's push and take, once per subscriber per publication). Optional: without a C compiler the hub
installs and runs on its pure-Python path."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("hub.net._writemany", ["hub/net/_writemany.c"], optional=True),
                   Extension("hub.core._outbox", ["hub/core/_outbox.c"], optional=True)])

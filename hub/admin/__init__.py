"""The admin web page (docs/admin.md): ``/admin`` on the server API's listener.

* :mod:`hub.admin.site`: the routes, its own Basic credentials, the methods the
  page may call (server API methods, plus live counters gathered from every node).
* ``hub/admin/static/``: the page itself, plain HTML, CSS and a JS module; no
  build step, no front-end library.
"""

from hub.admin.site import AdminSite

__all__ = ["AdminSite"]

"""Transport pieces shared by adapters: the HTTP server and the fast websocket."""

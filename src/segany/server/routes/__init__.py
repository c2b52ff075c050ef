"""The API's routers, one per concern, and the dependencies they share (:mod:`.deps`)."""

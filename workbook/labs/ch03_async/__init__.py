"""Chapter 3: asynchronous communication, delivery guarantees and sagas."""

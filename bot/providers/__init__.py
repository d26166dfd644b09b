"""Provider clients: httpx lives here and nowhere above."""

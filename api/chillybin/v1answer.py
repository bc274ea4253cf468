"""The v1 answer to `GET /`, kept ready as bytes: it is the busiest answer the service
gives, so it is encoded once each time the stock changes, not once a request."""
import json


class V1StockAnswer:
    """Told by the bin whenever what is available may have changed (under the bin's lock,
    before the change is acknowledged to anyone); re-encodes the original project's flat
    map, and hands each new answer to `publish` (the read replica's shared memory)."""

    def __init__(self, chilly, publish=None):
        self.chilly = chilly
        self.publish = publish
        self.body = b'{}'          # until the bin's first round has counted anything
        chilly.when_stock_changed = self.refresh

    def refresh(self):
        body = json.dumps(self.chilly.available_stock()).encode()
        if body != self.body:
            self.body = body
            if self.publish is not None:
                self.publish(body)

"""The kit's own descriptor pool: its copy of biome/user/v1/user_service.proto loads here, not
into protobuf's default pool, so it never collides with another copy of that file in the process
(the server's generated modules, or a caller's own, of another version: the default pool refuses
a second, different file of the same name).

The price: a Timestamp field of a kit message is this pool's Timestamp class, not
google.protobuf.timestamp_pb2.Timestamp. It reads the same (seconds, nanos, ToDatetime()); set it
from a datetime, not from a default-pool Timestamp. No request of the API takes a Timestamp."""

from __future__ import annotations

from google.protobuf import descriptor_pool, timestamp_pb2

POOL = descriptor_pool.DescriptorPool()
POOL.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)

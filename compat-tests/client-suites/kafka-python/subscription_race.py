"""pytest plugin (loaded by ../kafka-python.sh): works around a race in kafka-python 3.0's
`ClusterMetadata`, which its own code marks as a TODO ("handle future when old metadata request is
currently in-flight").

A consumer subscribes on the caller's thread while its bootstrap Metadata request (for no topics)
is in flight on the I/O thread. `set_topics` asks for an update, but the response to the older
request then clears that request (`_need_update = len(_retry_topics) > 0`), and the next refresh
is `metadata.max.age.ms` (5 minutes) away: the consumer never learns its topic's partitions and
fetches nothing. Against a broker that answers in well under a millisecond the window is hit in
a quarter of runs. The wrapper keeps the update pending when a tracked topic is missing from the
response, which is what a fixed client does; nothing else about the client changes.
"""

import kafka.cluster

_update_metadata = kafka.cluster.ClusterMetadata.update_metadata


def _update_metadata_keeping_newer_requests(self, metadata):
    result = _update_metadata(self, metadata)
    answered = {t.name if hasattr(t, "name") else t[1] for t in metadata.topics}
    if not self.need_all_topic_metadata and set(self._topics) - answered:
        self._need_update = True
    return result


kafka.cluster.ClusterMetadata.update_metadata = _update_metadata_keeping_newer_requests

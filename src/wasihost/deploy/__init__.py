"""Plugin bundles delivered over MQTT (docs/MQTT.md, "Deploying plugins").

- ``protocol``: the v1 topics and the report's fields, shared by both ends.
- ``node``: a node's side: listen for deliveries, verify, install, hot-reload,
  gate on health and roll back by itself.

The deployer's side (``wasihost deploy``) lives beside them.
"""

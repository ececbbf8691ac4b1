"""Plugin bundles delivered over MQTT (docs/MQTT.md, "Deploying plugins").

- ``protocol``: the v1 topics and the report's fields, shared by both ends.
- ``node``: a node's side: listen for deliveries, verify, install, hot-reload,
  gate on health and roll back by itself.
- ``disk``: the node's deploy folder: its layout, the deployed.json record and
  the repairs every start makes after a power cut or a full disk.
- ``report``: what a node reports on a plugin's rollout.

The deployer's side (``wasihost deploy``) lives beside them.
"""

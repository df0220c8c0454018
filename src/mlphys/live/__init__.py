"""Live challenges: entries scored as they arrive, a public board during the challenge, the private board at its end.

``mlphys challenge serve`` (:mod:`mlphys.live.service`) watches the course exchange for new submissions of the
challenges listed in ``challenges.toml`` (:mod:`mlphys.live.rules`), admits them under each challenge's rules
(:mod:`mlphys.live.intake`), scores their entries with the engine autograde uses (:mod:`mlphys.live.scoring`),
keeps every entry in the gradebook's database (:mod:`mlphys.live.store`) and publishes the boards and each student's
history into the exchange (:mod:`mlphys.live.publish`).  Grader code: a sandbox never mounts it.
"""

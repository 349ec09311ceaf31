"""Motion: the SMPL skeleton and forward kinematics (:mod:`~danceba.motion.skeleton`, numpy only) and
Bailando's 72-channel layout with its upper/lower body halves (:mod:`~danceba.motion.bailando_layout`)."""

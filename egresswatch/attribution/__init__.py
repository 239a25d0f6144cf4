"""Attribution: which container (and, later, which process) a flow belongs to."""

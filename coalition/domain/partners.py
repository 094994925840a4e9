"""Partners of the coalition (SPEC §5): what a partner may be."""

# The reserved partner that is the operator itself: it issues bonus points, settles like
# any other partner and pays no fee to itself
OPERATOR_PARTNER = "coalition"
CATEGORIES = ("shop", "cafe", "gym", "travel", "other")
STATUSES = ("active", "suspended")

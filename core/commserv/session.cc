// Filled in by its owner; an empty translation unit until then.

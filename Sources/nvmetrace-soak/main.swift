// Placeholder: the soak benchmark is being written.
print("nvmetrace-soak")

// The benchmark command arrives with the enter issue.
print("nsgroup-bench: not yet implemented")

print("natlab: under construction")

"""placeholder"""
class Target: pass
class Verdict: pass
def check_grouping(): pass

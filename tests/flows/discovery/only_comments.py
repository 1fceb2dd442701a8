# Only comments in this file: no code at all, so no flow and no problem.
# A comment that says FlowSpec does not make a flow:
# class CommentedOutFlow(FlowSpec):
#     pass

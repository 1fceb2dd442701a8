"""Expected: no flow. Flow classes that exist only inside strings and comments.

    from flowdeck import FlowSpec, step

    class DocstringFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.end)
"""
from flowdeck import FlowSpec  # noqa: F401  (imported, never subclassed)

TEMPLATE = '''
class StringFlow(FlowSpec):
    pass
'''
# class CommentFlow(FlowSpec):
#     pass


def render() -> str:
    return TEMPLATE.replace("StringFlow", "OtherFlow")

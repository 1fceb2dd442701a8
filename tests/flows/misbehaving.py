"""Steps that misbehave in the ways a user's code does; `mode` picks one."""
import sys
import threading

from flowdeck import FlowSpec, Parameter, step


class Unsized:
    """Indexable, with no length: as numpy's 0-d array (`np.array(5)`)."""

    def __getitem__(self, index):
        return index

    def __len__(self):
        raise TypeError("len() of unsized object")


class MisbehavingFlow(FlowSpec):
    mode = Parameter("mode", default="ok", help="exit | garbage | unpicklable | missing | "
                     "scalar | unsized | empty | generator | crash")

    @step
    def start(self):
        if self.mode == "missing":
            pass
        elif self.mode == "scalar":
            self.items = 42
        elif self.mode == "unsized":
            self.items = Unsized()
        elif self.mode == "empty":
            self.items = []
        elif self.mode == "generator":
            self.items = (i for i in range(3))
        else:
            self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        if self.mode == "exit":
            sys.exit(3)
        if self.mode == "garbage":
            sys.stdout.buffer.write(bytes(range(256)) + b"\xff\xfe\n")
            sys.stdout.buffer.write(b"partial line without newline \xe2\x82")
            sys.stdout.flush()
        if self.mode == "unpicklable":
            self.lock = threading.Lock()
        if self.mode == "crash":
            import os
            os._exit(7)
        self.item = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.items_seen = [i.item for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("seen", self.items_seen)


if __name__ == "__main__":
    MisbehavingFlow().run()

from metaflow import FlowSpec, step


class IfElseFlow(FlowSpec):
    @step
    def start(self):
        self.flag = True
        if self.flag:
            self.next(self.a)
        else:
            self.next(self.b)

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    IfElseFlow()

from metaflow import FlowSpec, card, catch, retry, step


class NestedFlow(FlowSpec):
    @card
    @step
    def start(self):
        self.xs = [1, 2]
        self.next(self.outer, foreach="xs")

    @step
    def outer(self):
        self.ys = [self.input, self.input * 10]
        self.next(self.inner, foreach="ys")

    @retry(times=1)
    @step
    def inner(self):
        self.v = self.input
        self.next(self.split2)

    @step
    def split2(self):
        self.next(self.p, self.q)

    @catch(var="oops")
    @step
    def p(self):
        self.pv = self.v
        self.next(self.j2)

    @step
    def q(self):
        self.qv = self.v
        self.next(self.j2)

    @step
    def j2(self, inputs):
        self.v = inputs.p.pv + inputs.q.qv
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.s = sum(i.v for i in inputs)
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.s = sum(i.s for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("s", self.s)


if __name__ == "__main__":
    NestedFlow()

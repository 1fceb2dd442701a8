"""A straight line of steps with a parameter: the smallest real Metaflow flow."""

from metaflow import FlowSpec, Parameter, step


class MfLinearFlow(FlowSpec):
    """Greets someone in three steps."""

    greeting = Parameter("greeting", default="hello", help="What to say")

    @step
    def start(self):
        """Pick the words."""
        self.words = [self.greeting, "world"]
        self.next(self.shout)

    @step
    def shout(self):
        """Make them loud."""
        self.message = " ".join(self.words).upper()
        print("message:", self.message)
        self.next(self.end)

    @step
    def end(self):
        """Done."""
        print("finished with", self.message)


if __name__ == "__main__":
    MfLinearFlow()

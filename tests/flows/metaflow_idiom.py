"""Metaflow's own idiom: the file ends with a bare `HelloFlow()`."""
from flowdeck import FlowSpec, Parameter, current, step


class HelloFlow(FlowSpec):
    """Say hello."""

    who = Parameter("who", default="world", help="whom to greet")
    times = Parameter("times", default=1, type=int, help="how many greetings")
    loud = Parameter("loud", default=False, help="shout")
    extra = Parameter("extra", required=True, help="a required value")

    @step
    def start(self):
        """Build the greeting."""
        greeting = f"hello {self.who}"
        self.greeting = greeting.upper() if self.loud else greeting
        self.info = (current.flow_name, current.run_id, current.step_name, current.task_id)
        self.next(self.end)

    @step
    def end(self):
        for _ in range(self.times):
            print(self.greeting, self.extra)


if __name__ == "__main__":
    HelloFlow()

from metaflow import Config, FlowSpec, Parameter, config_expr, resources, step


class ConfigFlow(FlowSpec):
    cfg = Config("cfg", default_value={"mode": "a", "cpu": 1, "items": [1, 2]})
    alpha = Parameter("alpha", default=config_expr("cfg.cpu"))

    @resources(cpu=config_expr("cfg.cpu"))
    @step
    def start(self):
        self.mode = self.cfg.mode
        self.next({"a": self.a, "b": self.b}, condition="mode")

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self):
        print(self.alpha)


if __name__ == "__main__":
    ConfigFlow()

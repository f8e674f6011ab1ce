// At most N holders; the rest wait in FIFO order.
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private limit: number) {}

  setLimit(limit: number) {
    this.limit = limit;
    this.dispatch();
  }

  acquire(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.dispatch();
    });
  }

  release(): void {
    this.active -= 1;
    this.dispatch();
  }

  private dispatch() {
    while (this.active < this.limit && this.waiting.length) {
      this.active += 1;
      this.waiting.shift()!();
    }
  }
}

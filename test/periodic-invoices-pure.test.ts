// The pure modules of CreatePeriodicInvoices: money, dates, variables, invoice numbers, prices and
// taxes. Expected values are the [V] facts of spec periodic-invoices.md (checked against Perl).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  addMonths,
  automaticExtension,
  calculateInvoiceDates,
  dueDate,
  formatUserDate,
  formatYmd,
  isLastBillDateInOrderValueCycle,
  parseYmd,
  periodEnd,
  subtractMonths,
  taxPoint,
  type DateConfig,
} from '../src/jobs/periodic-invoices/dates';
import { nextInvoiceNumber } from '../src/jobs/periodic-invoices/invoiceNumbers';
import { calculatePricesAndTaxes, type CalcItem, type TaxInfo } from '../src/jobs/periodic-invoices/pricesAndTaxes';
import { numText, round2, roundAmount, roundCash, toFixedExact } from '../src/jobs/periodic-invoices/money';
import { periodVariables, replaceVariables, StrftimePatternError, strftimeDe } from '../src/jobs/periodic-invoices/variables';

const D = parseYmd;
const F = formatYmd;

describe('money: round_amount', () => {
  test('half away from zero after the 15-digit snap', () => {
    assert.equal(round2(1.005), 1.01);
    assert.equal(round2(2.675), 2.68);
    assert.equal(round2(0.125), 0.13);
    assert.equal(round2(-0.125), -0.13);
    assert.equal(round2(27.7775), 27.78);
    assert.equal(round2(1234567.125), 1234567.13);
    assert.equal(round2(333.33 / 12), 27.78);
    assert.equal(round2(166.665), 166.67);
    assert.equal(round2(0), 0);
    assert.equal(round2(null), 0);
    assert.ok(Object.is(round2(-0.001), -0));
  });
  test('places 0 and carries into the integer part', () => {
    assert.equal(roundAmount(2.5, 0), 3);
    assert.equal(roundAmount(-2.5, 0), -3);
    assert.equal(roundAmount(9.995, 2), 10);
    assert.equal(roundAmount(99.999, 2), 100);
  });
  test('printf ties go to even on the exact binary value', () => {
    // 0.5^13 has exactly 13 decimals: a real tie at 12 decimals.
    assert.equal(toFixedExact(0.0001220703125, 12), '0.000122070312');
    assert.equal(toFixedExact(0.0001220703125, 11), '0.00012207031');
    assert.equal(toFixedExact(2.5, 0), '2');
    assert.equal(toFixedExact(3.5, 0), '4');
    assert.equal(toFixedExact(1.005, 3), '1.005');
  });
  test('cash rounding', () => {
    assert.equal(roundCash(154.71, 0.05), 154.7);
    assert.equal(roundCash(154.73, 0.05), 154.75);
    assert.equal(roundCash(10.004, 0), 10);
  });
  test('num→text is %.15g', () => {
    assert.equal(numText(8.403361344537815), '8.40336134453782');
    assert.equal(numText(333.33 - 11 * 27.78), '27.7499999999999');
    assert.equal(numText(27.749999999999943), '27.7499999999999');
    assert.equal(numText(0.1 + 0.2), '0.3');
    assert.equal(numText(1333.32), '1333.32');
    assert.equal(numText(-155.26), '-155.26');
  });
});

describe('dates: DateTime month arithmetic', () => {
  test('adding months wraps past the month end', () => {
    assert.equal(F(addMonths(D('2013-01-31'), 1)), '2013-03-03');
    assert.equal(F(addMonths(D('2012-01-31'), 1)), '2012-03-02');
    assert.equal(F(addMonths(D('2013-03-31'), 1)), '2013-05-01');
    assert.equal(F(addMonths(D('2013-05-31'), 1)), '2013-07-01');
    assert.equal(F(addMonths(D('2013-01-31'), 3)), '2013-05-01');
    assert.equal(F(addMonths(D('2012-02-29'), 12)), '2013-03-01');
    assert.equal(F(addMonths(D('2013-11-30'), 3)), '2014-03-02');
  });
  test('subtracting months preserves month ends', () => {
    assert.equal(F(subtractMonths(D('2013-03-31'), 1)), '2013-02-28');
    assert.equal(F(subtractMonths(D('2013-02-28'), 1)), '2013-01-31');
    assert.equal(F(subtractMonths(D('2013-03-30'), 1)), '2013-02-28');
    assert.equal(F(subtractMonths(D('2014-01-01'), 1)), '2013-12-01');
  });
  test('period end wraps', () => {
    const m = { periodicity: 'm', order_value_periodicity: 'p' };
    assert.equal(F(periodEnd(m, D('2014-01-01'))), '2014-01-31');
    assert.equal(F(periodEnd(m, D('2014-01-31'))), '2014-03-02');
    assert.equal(F(periodEnd({ periodicity: 'q', order_value_periodicity: 'p' }, D('2014-01-01'))), '2014-03-31');
    assert.equal(F(periodEnd({ periodicity: 'o', order_value_periodicity: 'y' }, D('2014-02-01'))), '2015-01-31');
  });

  const cfg = (over: Partial<DateConfig>): DateConfig => ({
    periodicity: 'm', order_value_periodicity: 'p', start_date: D('2014-01-01'), first_billing_date: null,
    end_date: null, terminated: false, extend_automatically_by: null, ...over,
  });
  const today = D('2014-03-15');
  const dates = (c: DateConfig, last: string | null = null) => calculateInvoiceDates(c, last ? D(last) : null, today, today).map(F);

  test('calculate_invoice_dates, spec §2.3 table', () => {
    assert.deepEqual(dates(cfg({})), ['2014-01-01', '2014-02-01', '2014-03-01']);
    assert.deepEqual(dates(cfg({}), '2014-03-01'), []);
    assert.deepEqual(dates(cfg({ start_date: D('2014-01-31') })), ['2014-01-31', '2014-03-03']);
    assert.deepEqual(dates(cfg({ start_date: D('2013-10-31') })), ['2013-10-31', '2013-12-01', '2014-01-01', '2014-02-01', '2014-03-01']);
    assert.deepEqual(dates(cfg({ periodicity: 'q', first_billing_date: D('2014-02-01') })), ['2014-02-01']);
    assert.deepEqual(dates(cfg({ end_date: D('2014-02-01'), terminated: true })), ['2014-01-01', '2014-02-01']);
    assert.deepEqual(dates(cfg({ periodicity: 'o' })), ['2014-01-01']);
    assert.deepEqual(dates(cfg({ periodicity: 'o', start_date: D('2014-04-01') })), []);
    assert.equal(dates(cfg({ start_date: D('2013-01-01') })).length, 15);
    // An auto-extending config ignores its end date here.
    assert.deepEqual(dates(cfg({ end_date: D('2014-01-15'), extend_automatically_by: 1 })), ['2014-01-01', '2014-02-01', '2014-03-01']);
  });

  test('automatic extension compares date and time; the end date itself counts as reached', () => {
    const at3 = new Date(2014, 2, 15, 3, 0, 0);
    assert.equal(automaticExtension({ terminated: false, end_date: D('2014-03-15'), extend_automatically_by: null }, at3), 'deactivate');
    assert.equal(automaticExtension({ terminated: false, end_date: D('2014-03-15'), extend_automatically_by: null }, new Date(2014, 2, 15, 0, 0, 0)), null);
    assert.equal(automaticExtension({ terminated: true, end_date: D('2014-03-01'), extend_automatically_by: null }, at3), null);
    assert.equal(automaticExtension({ terminated: false, end_date: D('2014-03-16'), extend_automatically_by: null }, at3), null);
    const ext = automaticExtension({ terminated: false, end_date: D('2014-03-15'), extend_automatically_by: 3 }, at3);
    assert.equal(typeof ext === 'object' && ext ? F(ext) : ext, '2014-06-15');
    const ext2 = automaticExtension({ terminated: false, end_date: D('2013-01-31'), extend_automatically_by: 1 }, at3);
    assert.equal(typeof ext2 === 'object' && ext2 ? F(ext2) : ext2, '2014-04-03');
  });

  test('last bill date in the order-value cycle', () => {
    const c = cfg({ start_date: D('2013-01-01'), order_value_periodicity: 'y' });
    assert.equal(isLastBillDateInOrderValueCycle(c, D('2013-11-01')), false);
    assert.equal(isLastBillDateInOrderValueCycle(c, D('2013-12-01')), true);
    // Golden 08: invoice dates drift to the 3rd, cycle dates are 31.01 → 01.05 → 01.08.
    const drift = cfg({ start_date: D('2014-01-31'), order_value_periodicity: 'q' });
    for (const p of ['2014-01-31', '2014-03-03', '2014-04-03', '2014-05-03', '2014-06-03']) {
      assert.equal(isLastBillDateInOrderValueCycle(drift, D(p)), false, p);
    }
  });

  test('tax point and due date', () => {
    assert.equal(F(taxPoint(null, D('2014-01-31'), D('2014-01-01'), 'm')), '2014-01-31');
    assert.equal(F(taxPoint(D('2013-11-15'), D('2014-02-28'), D('2014-02-01'), 'm')), '2014-02-15');
    assert.equal(F(taxPoint(D('2014-06-20'), D('2014-03-31'), D('2014-01-01'), 'q')), '2014-06-20');
    assert.equal(F(dueDate(D('2014-03-15'), { auto_calculation: true, terms_netto: 14 })), '2014-03-31');
    assert.equal(F(dueDate(D('2014-03-15'), { auto_calculation: true, terms_netto: 15 })), '2014-03-31');
    assert.equal(F(dueDate(D('2014-03-15'), { auto_calculation: false, terms_netto: 14 })), '2014-03-15');
    assert.equal(F(dueDate(D('2014-03-15'), null)), '2014-03-15');
  });

  test('user date formats', () => {
    assert.equal(formatUserDate(D('2014-03-01'), 'dd.mm.yy'), '01.03.2014');
    assert.equal(formatUserDate(D('2014-03-01'), 'yyyy-mm-dd'), '2014-03-01');
    assert.equal(formatUserDate(D('2014-03-01'), 'mm/dd/yy'), '03/01/2014');
  });
});

describe('variables', () => {
  const loc = { dateformat: 'dd.mm.yy', countrycode: 'de' };
  const vars = periodVariables({ periodicity: 'm', order_value_periodicity: 'p' }, D('2014-01-01'), loc);

  test('the verified example of spec §3.5', () => {
    const td =
      'TD <%period_start_date%> .. <%period_end_date%> q<%current_quarter%> m<%current_month%> <%current_month_long%> <%previous_month_long%> y<%next_year%> X<%CURRENT_MONTH%> F<%period_start_date format=%B %Y (%d.%m.%y) %A%> U<%unknown%>';
    assert.equal(
      replaceVariables(td, vars, 'text', 'de'),
      'TD 01.01.2014 .. 31.01.2014 q1 m1 Januar Dezember y2015 X FJanuar 2014 (01.01.14) Mittwoch U<%unknown%>',
    );
    const notes = '<p>N &lt;%current_month_long%&gt; &lt;%period_end_date format=%d.%m.%Y%&gt; &lt;%next_month_long%&gt; raw <%current_month%></p>';
    assert.equal(replaceVariables(notes, vars, 'html', 'de'), '<p>N Januar 31.01.2014 Februar raw <%current_month%></p>');
  });

  test('NULL becomes empty; values are HTML-quoted in HTML mode only', () => {
    assert.equal(replaceVariables(null, vars, 'text', 'de'), '');
    const en = periodVariables({ periodicity: 'm', order_value_periodicity: 'p' }, D('2014-03-01'), { dateformat: 'dd.mm.yy', countrycode: 'en' });
    assert.equal(replaceVariables('&lt;%period_start_date format=%B &amp; %b%&gt;', en, 'html', 'en'), 'M&auml;rz &amp; M&auml;rz');
    assert.equal(replaceVariables('&lt;%period_start_date format=%B%&gt;', vars, 'html', 'de'), 'Januar');
    assert.equal(replaceVariables('<%current_month_long%>', en, 'text', 'en'), 'March');
  });

  test('format "0" counts as no format; trailing blanks before the end tag are dropped', () => {
    assert.equal(replaceVariables('<%current_month format=0%>', vars, 'text', 'de'), '1');
    assert.equal(replaceVariables('<%current_month  FORMAT = %m  %>', vars, 'text', 'de'), '01');
  });

  test('strftime de_DE', () => {
    assert.equal(strftimeDe(D('2014-03-01'), '%a %A %b %B %e|%j|%u|%w|%y|%C|%F|%D|%x|%%'), 'Sa. Samstag März März  1|060|6|6|14|20|2014-03-01|03/01/14|01.03.2014|%');
    assert.equal(strftimeDe(D('2014-09-01'), '%b'), 'Sept.');
    assert.throws(() => strftimeDe(D('2014-01-01'), '%Y %Q'), (e: unknown) => e instanceof StrftimePatternError && /unrecognized strptime token, "%Q"/.test(e.message));
    assert.throws(() => replaceVariables('<%current_month format=%V%>', vars, 'text', 'de'), StrftimePatternError);
  });
});

describe('invoice numbers', () => {
  const none = new Set<string>();
  test('spec §4.6 table', () => {
    assert.equal(nextInvoiceNumber('RE-0099', none), 'RE-0100');
    assert.equal(nextInvoiceNumber('RE-0099', new Set(['RE-0100'])), 'RE-0101');
    assert.equal(nextInvoiceNumber('RE2014-0999', none), 'RE2014-1000');
    assert.equal(nextInvoiceNumber('0099', none), '0100');
    assert.equal(nextInvoiceNumber('9', none), '10');
    assert.equal(nextInvoiceNumber('ABC', none), 'ABC1');
    assert.equal(nextInvoiceNumber('R-9-', none), 'R-9-1');
    assert.equal(nextInvoiceNumber('', none), '1');
    assert.equal(nextInvoiceNumber(null, none), '1');
    assert.equal(nextInvoiceNumber('1.5', none), '1.6');
    assert.equal(nextInvoiceNumber('X 007', none), 'X 008');
  });
});

describe('prices and taxes (spec §4.9 examples)', () => {
  const t19: TaxInfo = { taxkeyRowId: 1, taxkeyId: 3, taxId: 777, rate: 0.19, chartId: 1776 };
  const t7: TaxInfo = { taxkeyRowId: 2, taxkeyId: 2, taxId: 378, rate: 0.07, chartId: 1771 };
  const item = (over: Partial<CalcItem>): CalcItem => ({
    sellprice: 0, discount: 0, qty: 1, itemBaseFactor: 1, partBaseFactor: 1, priceFactor: 1, margePriceFactor: 1,
    itemLastcost: 0, partLastcost: 0, partType: 'service', incomeChartId: 8400, tax: t19, inventory: null, components: [], ...over,
  });
  const itemsA = [
    item({ sellprice: 11.9, discount: 0.1, qty: 3, itemLastcost: 2.22, partType: 'part' }),
    item({ sellprice: 4.99, qty: 2, incomeChartId: 8300, tax: t7 }),
    item({ sellprice: 1, incomeChartId: 8300, tax: t7 }),
  ];
  const five = (x: number) => Number(numText(x)).toFixed(5);

  test('A: net prices, two tax rates', () => {
    const r = calculatePricesAndTaxes({ taxincluded: false, exchangerate: 1, precision: 0.01, perpetual: false, items: itemsA });
    assert.equal(r.netamount, 43.11);
    assert.equal(r.amount, 49.98);
    assert.deepEqual([...r.taxes], [[1776, 6.1], [1771, 0.77]]);
    assert.deepEqual([...r.income].map(([c, e]) => [c, five(e.amount), e.taxId, e.taxkey]), [[8400, '32.13000', 777, 3], [8300, '10.98000', 378, 2]]);
    assert.equal(five(r.items[0].margeTotal), '25.47000');
    assert.equal(five(r.items[0].margePercent), '79.27171');
    assert.equal(r.items[0].allocated, 0);
    assert.equal(r.items[1].allocated, null);
    assert.equal(five(r.margeTotal), '36.45000');
    assert.equal(five(r.margePercent), '84.55115');
    assert.equal(r.rounding, 0);
  });

  test('B: tax included books unrounded income (unbalanced by +0.00168)', () => {
    const r = calculatePricesAndTaxes({ taxincluded: true, exchangerate: 1, precision: 0.01, perpetual: false, items: itemsA });
    assert.equal(r.netamount, 37.26);
    assert.equal(r.amount, 43.11);
    assert.deepEqual([...r.taxes], [[1776, 5.13], [1771, 0.72]]);
    assert.deepEqual([...r.income].map(([c, e]) => [c, five(e.amount)]), [[8400, '27.00000'], [8300, '10.26168']]);
    assert.deepEqual(r.items.map((i) => five(i.margeTotal)), ['20.34000', '9.32710', '0.93458']);
    assert.equal(five(r.margeTotal), '30.60168');
  });

  test('C: cash rounding to 0.05', () => {
    const r = calculatePricesAndTaxes({ taxincluded: false, exchangerate: 1, precision: 0.05, perpetual: false, items: [item({ sellprice: 130.01 })] });
    assert.equal(r.amount, 154.7);
    assert.equal(r.rounding, -0.01);
  });

  test('D: foreign currency is converted twice', () => {
    const r = calculatePricesAndTaxes({ taxincluded: false, exchangerate: 2, precision: 0.01, perpetual: false, items: [item({ sellprice: 10 })] });
    assert.equal(r.netamount, 40);
    assert.equal(r.amount, 47.6);
    assert.equal(r.income.get(8400)!.amount, 20);
    assert.equal(r.taxes.get(1776), 7.6);
  });

  test('perpetual inventory: COGS over open purchase rows (spec §4.5 example)', () => {
    const inventory = {
      expenseChartId: 3400,
      inventoryChartId: 3980,
      openPurchases: [
        { id: 1, baseQty: -2, allocated: 0, sellprice: 2, discount: 0 },
        { id: 2, baseQty: -5, allocated: 0, sellprice: 3, discount: 0.1 },
      ],
    };
    const r = calculatePricesAndTaxes({ taxincluded: false, exchangerate: 1, precision: 0.01, perpetual: true, items: [item({ sellprice: 10, qty: 3, partType: 'part', inventory })] });
    assert.equal(r.items[0].allocated, -3);
    assert.deepEqual([...r.cogs].map(([c, v]) => [c, five(v)]), [[3400, '-6.70000'], [3980, '6.70000']]);
    assert.deepEqual([...r.allocatedUpdates], [[1, 2], [2, 1]]);
    inventory.openPurchases = [{ id: 2, baseQty: -5, allocated: 1, sellprice: 3, discount: 0.1 }];
    const next = calculatePricesAndTaxes({ taxincluded: false, exchangerate: 1, precision: 0.01, perpetual: true, items: [item({ sellprice: 10, qty: 3, partType: 'part', inventory })] });
    assert.equal(five(next.cogs.get(3400)!), '-8.10000');
  });
});

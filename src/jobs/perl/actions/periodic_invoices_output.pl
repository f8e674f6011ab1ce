# Action "periodic_invoices_output": prints and e-mails the invoices that a native CreatePeriodicInvoices
# run has posted and committed, through kivitendo's own SL::BackgroundJob::CreatePeriodicInvoices
# (_print_invoice, _email_invoice). So the client's edited templates, Form::parse_template with the
# LaTeX driver, SL::Helper::CreatePDF with ZUGFeRD/Factur-X, SL::Mailer with its journal, and
# kivitendo's translated error texts are exactly kivitendo's.
#
# Request:  { print => [ar id, ...], email => [ar id, ...] }   (in posting order, as kivitendo queues them)
# Result:   { printed => [ar id], printed_failed => [[ar id, error]], emailed => [ar id],
#             emailed_failed => [[ar id, error]], job_errors => [text] }
use strict;

use English qw(-no_match_vars);
use Scalar::Util qw(blessed);

use SL::BackgroundJob::CreatePeriodicInvoices;
use SL::DB::Invoice;
use SL::DB::PeriodicInvoice;
use SL::DB::PeriodicInvoicesConfig;

# What kivitendo's _create_periodic_invoice hands to _print_invoice/_email_invoice, rebuilt from the
# committed rows: the invoice, its config, the period start date and kivitendo's own period variables.
sub _kts_periodic_invoice_data {
  my ($ar_id) = @_;

  my $link = SL::DB::Manager::PeriodicInvoice->find_by(ar_id => $ar_id)
    or die "invoice id $ar_id has no periodic_invoices row\n";
  my $config  = SL::DB::PeriodicInvoicesConfig->new(id => $link->config_id)->load;
  my $invoice = SL::DB::Invoice->new(id => $ar_id)->load;

  # After posting, kivitendo's invoice object has its customer loaded; _email_invoice reads
  # $invoice->{customer} directly, so load the relationship the same way.
  $invoice->customer;

  # Posting leaves the amounts that Rose computed as Perl numbers on the object; a fresh load gives
  # PostgreSQL's numeric text ("155.26000"). <%amount%> in e-mail subjects prints the attribute as
  # is, so give the computed columns their numeric value again.
  for my $column (qw(amount netamount marge_total marge_percent)) {
    my $value = $invoice->$column;
    $invoice->$column(0 + $value) if defined $value;
  }

  return {
    config            => $config,
    invoice           => $invoice,
    period_start_date => $link->period_start_date,
    time_period_vars  => SL::BackgroundJob::CreatePeriodicInvoices::_generate_time_period_variables($config, $link->period_start_date),
  };
}

sub _kts_error_text {
  my ($error) = @_;
  return $error->error if blessed($error) && $error->can('error') && defined $error->error;
  return "$error";
}

sub kts_action_periodic_invoices_output {
  my ($request) = @_;

  my $job = SL::BackgroundJob::CreatePeriodicInvoices->new;
  $job->{$_} = [] for qw(job_errors posted_invoices printed_invoices printed_failed emailed_invoices emailed_failed disabled_orders);

  my %data;
  my $data_for = sub { my ($id) = @_; $data{$id} //= _kts_periodic_invoice_data($id) };

  # kivitendo prints every queued invoice first, then e-mails them. An exception that escapes its
  # methods would have rolled back kivitendo's whole run; here the invoices are committed already,
  # so it only fails that invoice, with kivitendo's text for a failed print or mail.
  my @steps = (
    [ print => '_print_invoice', 'Printing periodic invoice #1 failed: #2',         'printed_failed' ],
    [ email => '_email_invoice', 'Sending email for periodic invoice #1 failed: #2', 'emailed_failed' ],
  );
  foreach my $step (@steps) {
    my ($key, $method, $text, $failed) = @{ $step };
    foreach my $id (@{ $request->{$key} || [] }) {
      my $data;
      my $ok = eval {
        $data = $data_for->($id);
        $job->$method($data);
        1;
      };
      next if $ok;
      my $error    = _kts_error_text($EVAL_ERROR);
      my $invoice  = $data ? $data->{invoice} : undef;
      my $invnumber = $invoice ? $invoice->invnumber : "id $id";
      push @{ $job->{job_errors} }, $::locale->text($text, $invnumber, $error);
      push @{ $job->{$failed} }, [ $invoice // SL::DB::Invoice->new(id => $id), $error ];
    }
  }

  return {
    printed        => [ map { $_->id } @{ $job->{printed_invoices} } ],
    # As the summary mail's template shows them: stringified.
    printed_failed => [ map { [ $_->[0]->id, "$_->[1]" ] } @{ $job->{printed_failed} } ],
    emailed        => [ map { $_->id } @{ $job->{emailed_invoices} } ],
    emailed_failed => [ map { [ $_->[0]->id, "$_->[1]" ] } @{ $job->{emailed_failed} } ],
    job_errors     => [ map { "$_" } @{ $job->{job_errors} } ],
  };
}

1;

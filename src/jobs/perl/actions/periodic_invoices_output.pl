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
use File::Temp ();
use List::MoreUtils qw(first_index);
use List::Util qw(min);
use Scalar::Util qw(blessed refaddr);
use String::ShellQuote qw(shell_quote);

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

# kivitendo hands a LaTeX failure on as "<template> : <the whole latexmk output>" (hundreds of lines
# in the history row and the summary mail). Shortened to the template and the first error line of
# the log with the line it names; the whole output goes to the server's log.
sub _kts_short_latex_error {
  my ($error) = @_;
  return $error unless $error =~ m{^(\S+\.tex) : (.*)}s;
  my ($template, $log) = ($1, $2);
  my @lines = split m{\n}, $log;
  my $i     = first_index { m{^\s*! } } @lines;
  return $error if $i < 0;
  (my $message = $lines[$i]) =~ s{^\s+|\s+$}{}g;
  my ($where) = grep { m{^\s*l\.\d+} } @lines[ $i + 1 .. min($#lines, $i + 8) ];
  if ($where) {
    $where   =~ s{^\s+|\s+$}{}g;
    $message .= " ($where)";
  }
  print STDERR "kivitendo's LaTeX output for ${template}:\n$log\n";
  return "$template : $message";
}

# kivitendo writes the PDF into the printer command and never looks at its exit status, so a
# failing command counts as printed. The command (a ShellCommand template) is wrapped in memory so
# that a non-zero status of any copy is recorded; nothing is saved.
sub _kts_watch_printer_command {
  my ($config) = @_;
  my $printer  = $config->print && $config->printer_id ? $config->printer : undef;
  my $command  = $printer ? $printer->printer_command : undef;
  return undef unless defined $command && $command ne '';
  my $status = File::Temp->new(TEMPLATE => 'kts-printer-status-XXXXXX', TMPDIR => 1);
  $printer->printer_command("( $command\n) || echo \$? >> " . shell_quote($status->filename));
  return { file => $status, printer => $printer, command => $command };
}

sub _kts_printer_failure {
  my ($watch) = @_;
  return undef unless $watch;
  $watch->{printer}->printer_command($watch->{command});
  open my $fh, '<', $watch->{file}->filename or return undef;
  my @codes = grep { m{\S} } map { s{\s+}{}gr } <$fh>;
  return undef unless @codes;
  return sprintf("the printer command of printer '%s' exited with status %s", $watch->{printer}->printer_description // $watch->{printer}->id, join(', ', @codes));
}

sub kts_action_periodic_invoices_output {
  my ($request) = @_;

  my $job = SL::BackgroundJob::CreatePeriodicInvoices->new;
  $job->{$_} = [] for qw(job_errors posted_invoices printed_invoices printed_failed emailed_invoices emailed_failed disabled_orders);

  my %data;
  my $data_for = sub { my ($id) = @_; $data{$id} //= _kts_periodic_invoice_data($id) };

  # A printer command that ends before reading all of the PDF must not kill this process.
  local $SIG{PIPE} = 'IGNORE';

  # kivitendo prints every queued invoice first, then e-mails them. An exception that escapes its
  # methods would have rolled back kivitendo's whole run; here the invoices are committed already,
  # so it only fails that invoice, with kivitendo's text for a failed print or mail.
  my @steps = (
    [ print => '_print_invoice', 'Printing periodic invoice #1 failed: #2',         'printed_failed', 'printed_invoices' ],
    [ email => '_email_invoice', 'Sending email for periodic invoice #1 failed: #2', 'emailed_failed', 'emailed_invoices' ],
  );
  foreach my $step (@steps) {
    my ($key, $method, $text, $failed, $done) = @{ $step };
    foreach my $id (@{ $request->{$key} || [] }) {
      my ($data, $watch);
      my ($n_failed, $n_errors) = (scalar @{ $job->{$failed} }, scalar @{ $job->{job_errors} });
      my $ok = eval {
        $data  = $data_for->($id);
        $watch = _kts_watch_printer_command($data->{config}) if $key eq 'print';
        $job->$method($data);
        1;
      };
      my $error = $ok ? undef : _kts_error_text($EVAL_ERROR);
      my $printer_failure = _kts_printer_failure($watch);

      if ($ok && $printer_failure && @{ $job->{$done} } && refaddr($job->{$done}->[-1]) == refaddr($data->{invoice})) {
        pop @{ $job->{$done} };
        ($ok, $error) = (0, $printer_failure);
      }

      # Shorten LaTeX failures kivitendo recorded itself.
      for my $entry (@{ $job->{$failed} }[ $n_failed .. $#{ $job->{$failed} } ]) {
        my $long  = "$entry->[1]";
        my $short = _kts_short_latex_error($long);
        next if $short eq $long;
        $entry->[1] = $short;
        s{\Q$long\E}{$short} for @{ $job->{job_errors} }[ $n_errors .. $#{ $job->{job_errors} } ];
      }

      next if $ok;
      $error        = _kts_short_latex_error($error);
      my $invoice   = $data ? $data->{invoice} : undef;
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
